"""Who may submit mail: the users file (argon2id password hashes and the
sender addresses each user may use)."""
