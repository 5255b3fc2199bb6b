"""The aiohttp application, configuration, CLI, authentication and the error-to-HTTP mapping."""
