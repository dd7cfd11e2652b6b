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
from .environment import function_environment, with_queue
from .keep_warm import create_keep_warm
from .naming import Names
from .packaging import PYTHON_VERSION
from .policies import handler_policy, handler_resources, lambda_trust_policy
from .queues import create_queue_trigger, create_queues
from .secrets import create_prompt_parameter, create_secret_store
from .table import create_table

COMPONENT_TYPE = "messenger-bridge:index:MessengerBridge"
RUNTIME = f"python{PYTHON_VERSION}"
HANDLER = "handler.app.lambda_handler"
VERIFY_TOKEN_LENGTH = 32


@dataclass(frozen=True)
class MessengerBridgeArgs:
    settings: BridgeSettings
    secrets: BridgeSecrets
    names: Names
    code: pulumi.Archive  # the zip from infra.packaging


class MessengerBridge(pulumi.ComponentResource):
    """Function + URL, table, secrets, FIFO queue + DLQ, logs, role and keep-warm schedule."""

    webhook_url: pulumi.Output[str]
    verify_token: pulumi.Output[str]
    table_name: pulumi.Output[str]
    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    queue_url: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]

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
        prompt = (
            create_prompt_parameter(f"{name}-system-prompt", names, settings.system_prompt, self)
            if settings.system_prompt
            else None
        )
        parameters = [*store.parameters.values(), *([prompt] if prompt else [])]
        table = create_table(f"{name}-table", names.table, settings.protect_table, self)
        queues = create_queues(f"{name}-queue", names, settings, self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=names.log_group,
            retention_in_days=settings.log_retention_days,
            opts=child,
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
            ).apply(
                lambda arns: json.dumps(
                    handler_policy(
                        handler_resources(
                            table_arn=arns["table"],
                            parameter_arns=arns["parameters"],
                            key_arn=arns["key"],
                            log_group_arn=arns["logs"],
                            queue_arn=arns["queue"],
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
            names.parameter("system_prompt") if prompt else None,
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
                variables=with_queue(environment, queues.queue.url)
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
        url = self._public_url(name, function)
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

        self.webhook_url = url.function_url
        self.verify_token = pulumi.Output.secret(verify_token)
        self.table_name = table.name
        self.function_name = function.name
        self.function_arn = function.arn
        self.queue_url = queues.queue.url
        self.dead_letter_queue_url = queues.dead_letter_queue.url
        self.register_outputs(
            {
                "webhook_url": self.webhook_url,
                "verify_token": self.verify_token,
                "table_name": self.table_name,
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "queue_url": self.queue_url,
                "dead_letter_queue_url": self.dead_letter_queue_url,
            }
        )

    def _public_url(self, name: str, function: aws.lambda_.Function) -> aws.lambda_.FunctionUrl:
        """A public URL: Facebook signs its deliveries and the handler checks the signature.

        Since October 2025 a public URL needs both statements: InvokeFunctionUrl (with the
        auth type) and InvokeFunction restricted to calls through the URL.
        """
        child = pulumi.ResourceOptions(parent=self)
        url = aws.lambda_.FunctionUrl(
            f"{name}-url", function_name=function.name, authorization_type="NONE", opts=child
        )
        aws.lambda_.Permission(
            f"{name}-url-invoke-url",
            statement_id="FunctionUrlPublicInvokeUrl",
            action="lambda:InvokeFunctionUrl",
            function=function.name,
            principal="*",
            function_url_auth_type="NONE",
            opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-url-invoke-function",
            statement_id="FunctionUrlPublicInvokeFunction",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="*",
            invoked_via_function_url=True,
            opts=child,
        )
        return url
