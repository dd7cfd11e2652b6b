"""A minimal Python Lambda runtime: the loop the execution environment runs around the handler.

Not imported by the tests: ``lambda_service.ExecutionEnvironment`` runs it as
``python3.13 -I -S -u bootstrap.py`` with the function's environment and nothing else. It
does what the python3.13 runtime does, with the standard library only:

- ``sys.path`` is the task root (the extracted archive, ``LAMBDA_TASK_ROOT``) and then the
  runtime's own libraries (``LAMBDA_RUNTIME_DIR``: boto3 and its dependencies);
- ``_HANDLER`` (``module.function``) is imported once; an import failure is reported to
  ``/runtime/init/error``;
- then, forever: ``GET /runtime/invocation/next``, call the handler with the event and a
  context object, ``POST`` the result to ``.../response`` or the error to ``.../error``.
"""

import importlib
import json
import os
import sys
import time
import traceback
import urllib.request

API_VERSION = "2018-06-01"


class Context:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, headers):
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = None
        self.identity = None

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def runtime_api(method, path, body=None, headers=None):
    url = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/{API_VERSION}/runtime/{path}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=None) as response:
        return response.headers, response.read()


def error_payload(error):
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
    ).encode()


def main():
    sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], os.environ["LAMBDA_RUNTIME_DIR"]]
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:
        traceback.print_exc()
        runtime_api(
            "POST",
            "init/error",
            error_payload(error),
            {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
        )
        return 1
    while True:
        headers, body = runtime_api("GET", "invocation/next")
        context = Context(headers)
        try:
            result = handler(json.loads(body), context)
            payload = json.dumps(result).encode()
        except Exception as error:
            traceback.print_exc()
            runtime_api(
                "POST",
                f"invocation/{context.aws_request_id}/error",
                error_payload(error),
                {"Lambda-Runtime-Function-Error-Type": f"Runtime.{type(error).__name__}"},
            )
            continue
        runtime_api("POST", f"invocation/{context.aws_request_id}/response", payload)


if __name__ == "__main__":
    sys.exit(main())
