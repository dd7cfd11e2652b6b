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
    "dailySpendLimitUsd": "5.0",
    "dailyTokenLimit": 50000,
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
    "maxTokens": 2000,
    "mediaMaxMb": 5,
    "memoryMb": 512,
    "menuLinks": [],
    "model": "gpt-5-mini",
    "modelPrices": [
        "gpt-5-mini=0.25/0.025/2.00",
        "gpt-5-nano=0.05/0.005/0.40",
        "gpt-4.1-mini=0.40/0.10/1.60",
        "gpt-4o-mini=0.15/0.075/0.60",
        "gpt-4o-mini-transcribe=3.00/3.00/5.00",
    ],
    "openaiApi": "chat",
    "openaiBaseUrl": "",
    "pageId": "",
    "privacyContact": "",
    "privacyText": "",
    "privacyTextFile": "",
    "protectTable": "auto",
    "quotaTimezone": "UTC",
    "reasoningEffort": "low",
    "reservedConcurrency": -1,
    "retryDelaySeconds": 10,
    "systemPrompt": "",
    "systemPromptFile": "",
    "temperature": "",
    "timeoutSeconds": 120,
    "topP": "",
    "transcriptionModel": "gpt-4o-mini-transcribe",
    "verifyToken": "",
    "vision": True,
    "welcomeMessage": "",
}
