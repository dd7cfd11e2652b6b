"""The Pulumi program: read this stack's settings, build the code, create one bridge.

Everything else lives in ``infra/``; see docs/DEPLOY.md for the settings and secrets.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.bridge import MessengerBridge, MessengerBridgeArgs
from infra.config import load_secrets, load_settings
from infra.naming import names_for
from infra.packaging import build_lambda_archive

PROJECT_ROOT = Path(__file__).resolve().parent

settings = load_settings()
secrets = load_secrets()
names = names_for(pulumi.get_project(), pulumi.get_stack(), aws.get_region().region)
archive = build_lambda_archive(PROJECT_ROOT, settings.architecture, warn=pulumi.log.warn)

bridge = MessengerBridge(
    "bridge",
    MessengerBridgeArgs(
        settings=settings,
        secrets=secrets,
        names=names,
        code=pulumi.FileArchive(str(archive)),
    ),
)

pulumi.export("webhookUrl", bridge.webhook_url)
# For the app's settings (Basic > Privacy Policy URL, User data deletion > callback URL).
pulumi.export("privacyUrl", bridge.privacy_url)
pulumi.export("dataDeletionUrl", bridge.data_deletion_url)
pulumi.export("verifyToken", bridge.verify_token)
pulumi.export("tableName", bridge.table_name)
pulumi.export("functionName", bridge.function_name)
pulumi.export("queueUrl", bridge.queue_url)
pulumi.export("deadLetterQueueUrl", bridge.dead_letter_queue_url)
# Operations: the CloudWatch dashboard, and the topic alarms and owner alerts go to.
pulumi.export("dashboardUrl", bridge.dashboard_url)
pulumi.export("ownerTopicArn", bridge.owner_topic_arn)
