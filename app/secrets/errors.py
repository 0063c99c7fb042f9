from app.core.errors import ServiceUnavailable


class SecretUnavailable(ServiceUnavailable):
    """A secret cannot be opened (its master key is not configured, or the row was altered):
    whatever needed it is not done, and nothing is sent with the ciphertext instead."""

    problem = "secret-unavailable"
    title = "Secret unavailable"
