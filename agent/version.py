"""Warden's release version, one number for the control plane and the agent.

Both distributions (packaging/agent, packaging/control-plane) read it from here when they
are built, the control plane shows it (UI footer, /api/v1/version) and the agent logs it at
start and sends it in its heartbeats. This module imports nothing, so a build can read it.
"""

VERSION = "0.2.0"
