"""Operator tools (a layer above the kernel and the services): ``scorestream state ...``."""
