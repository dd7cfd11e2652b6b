"""Tests of the Pulumi program (infra/, __main__.py) and of the Lambda packaging."""
