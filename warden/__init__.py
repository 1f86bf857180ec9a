"""The ``warden`` command (warden/cli.py): the control plane's processes and its management
commands, for a checkout (``python -m warden``) and the installed wheel alike."""
