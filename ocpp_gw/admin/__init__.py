"""The admin listener: the JSON API, who may use it, and the operator console's static files."""
