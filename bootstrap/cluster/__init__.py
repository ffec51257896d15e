"""The only package that talks to the API server: the client, the applier and the objects we create."""
