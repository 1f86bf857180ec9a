"""PostgreSQL v3 protocol message types: the type byte of each message the agent reads or
builds, as an int (``data[pos]``; ``codec.message`` builds from it).

Frontend and backend messages share letters ('E' is Execute from a client and
ErrorResponse from a server), so each constant says which direction it belongs to.
Below them, the one-byte values inside messages that the agent reads or builds, as bytes
(the payload's ``[:1]``); a letter there is no message type.
"""

# Frontend (client → server)
BIND = ord("B")
CLOSE = ord("C")
COPY_DONE = ord("c")
COPY_FAIL = ord("f")
DESCRIBE = ord("D")
EXECUTE = ord("E")
FLUSH = ord("H")
FUNCTION_CALL = ord("F")
PARSE = ord("P")
PASSWORD = ord("p")  # also SASLInitialResponse and SASLResponse
QUERY = ord("Q")
SYNC = ord("S")
TERMINATE = ord("X")

# Backend (server → client)
AUTHENTICATION = ord("R")  # AuthenticationOk and the other authentication requests
BACKEND_KEY_DATA = ord("K")
BIND_COMPLETE = ord("2")
CLOSE_COMPLETE = ord("3")
COMMAND_COMPLETE = ord("C")
COPY_IN_RESPONSE = ord("G")
COPY_OUT_RESPONSE = ord("H")
COPY_DATA = ord("d")
COPY_OUT_DONE = ord("c")
DATA_ROW = ord("D")
EMPTY_QUERY_RESPONSE = ord("I")
ERROR_RESPONSE = ord("E")
NO_DATA = ord("n")
NOTIFICATION_RESPONSE = ord("A")
NOTICE_RESPONSE = ord("N")
PARAMETER_DESCRIPTION = ord("t")
PARAMETER_STATUS = ord("S")
PARSE_COMPLETE = ord("1")
PORTAL_SUSPENDED = ord("s")
READY_FOR_QUERY = ord("Z")
ROW_DESCRIPTION = ord("T")

# What a Describe or Close names: the first byte of its payload.
TARGET_STATEMENT = b"S"
TARGET_PORTAL = b"P"

# ReadyForQuery's transaction status: the byte of its payload.
TX_IDLE = b"I"
TX_IN_BLOCK = b"T"
TX_FAILED = b"E"
