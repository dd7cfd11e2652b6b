"""Failures the owner can act on, and the plain sentence each AWS failure becomes.

The CLI never shows a traceback for these: each one ends in a message on stderr and an
exit code (1 for a failure, 2 for a wrong command line, as argparse does).
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

EXIT_ERROR = 1
EXIT_USAGE = 2

CREDENTIALS_HELP = (
    "no AWS credentials found. Configure them with `aws configure` (or `aws sso login` for "
    "SSO), then pick them with --profile or AWS_PROFILE; or set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY"
)
# Codes that mean "these credentials are not good", whatever the operation.
_BAD_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
# SQS's "no such queue", in its query (old) and JSON (current) protocols.
_NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


class AdminError(Exception):
    """Something the owner can fix; the message says what and how."""

    exit_code = EXIT_ERROR


class UsageError(AdminError):
    """The command line itself is wrong (exit 2), caught after argparse had its say."""

    exit_code = EXIT_USAGE


def explain_aws_error(error: BotoCoreError | ClientError, table: str, region: str | None) -> str:
    """One sentence for a boto failure: the known ones with what to do, others as AWS said."""
    where = region or "(no region)"
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return CREDENTIALS_HELP
    if isinstance(error, ProfileNotFound):
        return f"{error}; check --profile / AWS_PROFILE against ~/.aws/config"
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region, set AWS_REGION, or set one in your AWS profile"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS ({error}); check your network, --region and AWS_ENDPOINT_URL"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code, message = info.get("Code", ""), info.get("Message", "")
        if code == "ResourceNotFoundException":
            if error.operation_name == "GetFunctionConfiguration":
                return f"function not found in region {where}: {message}; check --function"
            return (
                f"table {table} not found in region {where}; "
                "pass --table or check --region/AWS_PROFILE"
            )
        if code in _NO_QUEUE:
            return (
                f"queue not found in region {where} ({error.operation_name}); check "
                "--dead-letter-url/--queue-url (or BRIDGE_DLQ_URL/BRIDGE_QUEUE_URL) and "
                "--region/AWS_PROFILE"
            )
        if code == "ValidationException" and "index" in message.lower():
            return (
                f"table {table} has no users_by_activity index: is it this project's table? "
                "pass --table"
            )
        if code in _BAD_CREDENTIALS:
            return f"AWS did not accept these credentials ({code}); {CREDENTIALS_HELP}"
        if code in _EXPIRED:
            return f"your AWS session has expired ({code}); refresh it, e.g. `aws sso login`"
        if code in {"AccessDeniedException", "AccessDenied"}:
            return f"AWS denied access: {message}"
        return f"AWS error {code or 'unknown'}: {message or error}"
    return f"AWS error: {error}"
