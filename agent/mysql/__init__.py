"""The agent for the MySQL client/server protocol (MySQL and MariaDB)."""
