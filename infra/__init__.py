"""The Pulumi side of the bridge: settings, names, policies, packaging and the component.

Modules are small and mostly pure so they can be tested without an AWS account; only
``bridge`` (and the helpers it calls) create resources.
"""
