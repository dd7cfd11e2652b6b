"""``MessengerBridge``: everything one Facebook page's bot needs, as one component.

A fork that runs several page bots creates one per page, each with its own ``Names``
(``names_for(project, stack, region, bot="page-a")``) so nothing collides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from .config import BridgeSecrets, BridgeSettings
from .environment import compact_list, function_environment, with_resources
from .keep_warm import create_keep_warm
from .messenger_setup import MessengerProfile, PageSubscription, WebhookSubscription
from .monitoring import Thresholds, Watched, create_monitoring, create_topic, dashboard_url
from .naming import Names
from .packaging import PYTHON_VERSION
from .policies import handler_policy, handler_resources, lambda_trust_policy
from .queues import create_queue_trigger, create_queues
from .secrets import create_secret_store, create_text_parameter
from .table import create_table

COMPONENT_TYPE = "messenger-bridge:index:MessengerBridge"
RUNTIME = f"python{PYTHON_VERSION}"
HANDLER = "handler.app.lambda_handler"
VERIFY_TOKEN_LENGTH = 32
# Paths the function serves beside the webhook, for the app's settings (going Live).
PRIVACY_PATH = "privacy"
DATA_DELETION_PATH = "data-deletion"
MANUAL_SETUP = (
    "Messenger is not set up by `pulumi up`: {missing}. Connect the webhook and the page in "
    "Meta's dashboard (docs/DEPLOY.md), or set appId and pageId and run `pulumi up` again"
)


@dataclass(frozen=True)
class MessengerBridgeArgs:
    settings: BridgeSettings
    secrets: BridgeSecrets
    names: Names
    code: pulumi.Archive  # the zip from infra.packaging


@dataclass(frozen=True)
class PublicUrl:
    """The function's URL and the two statements that make it public."""

    url: aws.lambda_.FunctionUrl
    permissions: tuple[aws.lambda_.Permission, ...]


@dataclass(frozen=True)
class MessengerSetup:
    """What `pulumi up` sets at Meta when appId and pageId are given."""

    webhook: WebhookSubscription
    page: PageSubscription
    profile: MessengerProfile


class MessengerBridge(pulumi.ComponentResource):
    """Function + URL, table, secrets, FIFO queue + DLQ, logs, role and keep-warm schedule,
    and, given the app and page ids, the page's Messenger set-up."""

    webhook_url: pulumi.Output[str]
    privacy_url: pulumi.Output[str]
    data_deletion_url: pulumi.Output[str]
    messenger: MessengerSetup | None  # None: appId and pageId not both set
    verify_token: pulumi.Output[str]
    table_name: pulumi.Output[str]
    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    queue_url: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]
    owner_topic_arn: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: MessengerBridgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        settings, names = args.settings, args.names
        child = pulumi.ResourceOptions(parent=self)

        verify_token = args.secrets.verify_token
        if verify_token is None:
            verify_token = random.RandomPassword(
                f"{name}-verify-token", length=VERIFY_TOKEN_LENGTH, special=False, opts=child
            ).result
        store = create_secret_store(
            f"{name}-secret",
            names,
            {
                "app_secret": args.secrets.app_secret,
                "page_access_token": args.secrets.page_access_token,
                "verify_token": verify_token,
                "openai_api_key": args.secrets.openai_api_key,
            },
            settings.kms_key_arn,
            self,
        )
        texts = {
            text_name: create_text_parameter(
                f"{name}-{text_name.replace('_', '-')}", names, text_name, text, self
            )
            for text_name, text in (
                ("system_prompt", settings.system_prompt),
                ("privacy_text", settings.privacy_text),
                ("welcome_message", settings.welcome_message),
                # The same compact JSON list ICE_BREAKERS holds in a local run.
                (
                    "ice_breakers",
                    compact_list(settings.ice_breakers) if settings.ice_breakers else None,
                ),
            )
            if text
        }
        # The texts' parameters are read with the secrets: one statement grants them all.
        parameters = [*store.parameters.values(), *texts.values()]
        table = create_table(f"{name}-table", names.table, settings.protect_table, self)
        queues = create_queues(f"{name}-queue", names, settings, self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=names.log_group,
            retention_in_days=settings.log_retention_days,
            opts=child,
        )
        # Alarms and "owner must act" alerts; e-mail when ownerEmail is set.
        topic = create_topic(
            f"{name}-owner-topic", names.topic, store.key_arn, settings.owner_email, self
        )
        role = aws.iam.Role(
            f"{name}-role",
            name=names.role,
            description=f"Runs the {names.prefix} function",
            assume_role_policy=json.dumps(lambda_trust_policy()),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            name="handler",
            role=role.id,
            policy=pulumi.Output.all(
                table=table.arn,
                parameters=pulumi.Output.all(*[p.arn for p in parameters]),
                key=store.key_arn,
                logs=log_group.arn,
                queue=queues.queue.arn,
                topic=topic.arn,
            ).apply(
                lambda arns: json.dumps(
                    handler_policy(
                        handler_resources(
                            table_arn=arns["table"],
                            parameter_arns=arns["parameters"],
                            key_arn=arns["key"],
                            log_group_arn=arns["logs"],
                            queue_arn=arns["queue"],
                            topic_arn=arns["topic"],
                        )
                    )
                )
            ),
            opts=child,
        )
        environment = function_environment(
            settings,
            names.table,
            {secret: names.parameter(secret) for secret in store.parameters},
            names.parameter("system_prompt") if "system_prompt" in texts else None,
            names.parameter("privacy_text") if "privacy_text" in texts else None,
            metrics_stack=names.prefix,
            welcome_message_parameter=(
                names.parameter("welcome_message") if "welcome_message" in texts else None
            ),
            ice_breakers_parameter=(
                names.parameter("ice_breakers") if "ice_breakers" in texts else None
            ),
        )
        function = aws.lambda_.Function(
            f"{name}-function",
            name=names.function,
            role=role.arn,
            runtime=RUNTIME,
            handler=HANDLER,
            architectures=[settings.architecture],
            code=args.code,
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables=with_resources(environment, queues.queue.url, topic.arn)
            ),
            # Lambda filters JSON lines by their "level" before they are stored (and billed):
            # ours by logLevel, its own START/END/REPORT lines at INFO (DEBUG when debugging).
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON",
                log_group=log_group.name,
                application_log_level=settings.log_level,
                system_log_level=settings.system_log_level,
            ),
            # The environment names these by string: say the order out loud. The log group
            # must exist first or Lambda creates its own, without retention.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[log_group, policy, table, *parameters],
            ),
        )
        public = self._public_url(name, function)
        url = public.url
        create_queue_trigger(
            f"{name}-queue-trigger", queues.queue, function, settings, policy, self
        )
        if settings.keep_warm_minutes:
            create_keep_warm(
                f"{name}-keep-warm",
                names.keep_warm_rule,
                settings.keep_warm_minutes,
                function,
                self,
            )

        region = names.region
        dashboard = create_monitoring(
            f"{name}-monitoring",
            Watched(
                stack=names.prefix,
                function=names.function,
                queue=names.queue,
                dead_letter_queue=names.dead_letter_queue,
                region=region,
                dashboard=names.dashboard,
            ),
            Thresholds(settings.alarm_queue_age_seconds, settings.alarm_errors),
            topic,
            settings.alarms,
            self,
        )

        self.messenger = None
        if settings.sets_up_messenger:
            self.messenger = self._messenger_setup(name, args, verify_token, function, public)
        else:
            ids = {"appId": settings.app_id, "pageId": settings.page_id}
            missing = [key for key, value in ids.items() if not value]
            said = MANUAL_SETUP.format(missing=f"{' and '.join(missing)} not set")
            # One id without the other is most likely a set-up left half done: say so louder.
            (pulumi.log.warn if len(missing) == 1 else pulumi.log.info)(said, resource=self)

        self.webhook_url = url.function_url
        self.privacy_url = url.function_url.apply(lambda base: _beside(base, PRIVACY_PATH))
        self.data_deletion_url = url.function_url.apply(
            lambda base: _beside(base, DATA_DELETION_PATH)
        )
        self.verify_token = pulumi.Output.secret(verify_token)
        self.table_name = table.name
        self.function_name = function.name
        self.function_arn = function.arn
        self.queue_url = queues.queue.url
        self.dead_letter_queue_url = queues.dead_letter_queue.url
        self.owner_topic_arn = topic.arn
        self.dashboard_url = dashboard.dashboard_name.apply(lambda n: dashboard_url(region, n))
        self.register_outputs(
            {
                "webhook_url": self.webhook_url,
                "privacy_url": self.privacy_url,
                "data_deletion_url": self.data_deletion_url,
                "verify_token": self.verify_token,
                "table_name": self.table_name,
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "queue_url": self.queue_url,
                "dead_letter_queue_url": self.dead_letter_queue_url,
                "owner_topic_arn": self.owner_topic_arn,
                "dashboard_url": self.dashboard_url,
            }
        )

    def _messenger_setup(
        self,
        name: str,
        args: MessengerBridgeArgs,
        verify_token: pulumi.Input[str],
        function: aws.lambda_.Function,
        public: PublicUrl,
    ) -> MessengerSetup:
        """The app's webhook, the page's subscription and its profile, through the Graph API.

        Meta calls the verify challenge while the webhook is subscribed: the function, its
        URL and both statements that make the URL public come first. The page is subscribed
        once the app has its webhook, and the profile (whose Get Started the function answers)
        last, so `pulumi destroy` takes them away in the reverse order.
        """
        settings = args.settings
        graph = settings.graph_api_url
        webhook = WebhookSubscription(
            f"{name}-webhook-subscription",
            graph_api_url=graph,
            app_id=settings.app_id,
            app_secret=args.secrets.app_secret,
            callback_url=public.url.function_url,
            verify_token=verify_token,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[function, public.url, *public.permissions]
            ),
        )
        page = PageSubscription(
            f"{name}-page-subscription",
            graph_api_url=graph,
            app_id=settings.app_id,
            page_id=settings.page_id,
            page_access_token=args.secrets.page_access_token,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[webhook]),
        )
        profile = MessengerProfile(
            f"{name}-messenger-profile",
            graph_api_url=graph,
            page_id=settings.page_id,
            page_access_token=args.secrets.page_access_token,
            profile=settings.messenger_profile(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[page, function]),
        )
        return MessengerSetup(webhook, page, profile)

    def _public_url(self, name: str, function: aws.lambda_.Function) -> PublicUrl:
        """A public URL: Facebook signs its deliveries and the handler checks the signature.

        Since October 2025 a public URL needs both statements: InvokeFunctionUrl (with the
        auth type) and InvokeFunction restricted to calls through the URL.
        """
        child = pulumi.ResourceOptions(parent=self)
        url = aws.lambda_.FunctionUrl(
            f"{name}-url", function_name=function.name, authorization_type="NONE", opts=child
        )
        invoke_url = aws.lambda_.Permission(
            f"{name}-url-invoke-url",
            statement_id="FunctionUrlPublicInvokeUrl",
            action="lambda:InvokeFunctionUrl",
            function=function.name,
            principal="*",
            function_url_auth_type="NONE",
            opts=child,
        )
        invoke_function = aws.lambda_.Permission(
            f"{name}-url-invoke-function",
            statement_id="FunctionUrlPublicInvokeFunction",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="*",
            invoked_via_function_url=True,
            opts=child,
        )
        return PublicUrl(url, (invoke_url, invoke_function))


def _beside(function_url: str, path: str) -> str:
    """``https://<id>.lambda-url.<region>.on.aws/`` + ``privacy``."""
    return f"{function_url.rstrip('/')}/{path}"
