"""The settings' defaults, generated from Pulumi.yaml by ``python -m infra.defaults``.

Do not edit: change Pulumi.yaml and run that command again (a test fails while they differ).
Keys are the config keys; secrets have no default and are not here.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "adminPsids": [],
    "appId": "",
    "architecture": "arm64",
    "batchSize": 1,
    "dailyLimit": 10,
    "graphApiVersion": "v26.0",
    "greeting": "",
    "greetings": [],
    "historyMaxChars": 6000,
    "historyTtlHours": 24,
    "historyTurns": 6,
    "iceBreakers": [],
    "keepWarmMinutes": 20,
    "kmsKeyArn": "",
    "logLevel": "INFO",
    "logRetentionDays": 14,
    "maxConcurrency": 5,
    "maxReceiveCount": 5,
    "maxTokens": 800,
    "memoryMb": 512,
    "menuLinks": [],
    "model": "gpt-4.1-mini",
    "openaiBaseUrl": "",
    "pageId": "",
    "privacyContact": "",
    "privacyText": "",
    "privacyTextFile": "",
    "protectTable": "auto",
    "quotaTimezone": "UTC",
    "reservedConcurrency": -1,
    "retryDelaySeconds": 10,
    "systemPrompt": "",
    "systemPromptFile": "",
    "temperature": "0.7",
    "timeoutSeconds": 120,
    "verifyToken": "",
    "welcomeMessage": "",
}
