"""Warden enforcement agent (no Django imports): a protocol-neutral core (bundle, decisions,
masking, audit, control-plane client, metrics, listener) and one package per wire protocol,
``agent.postgres`` first."""
