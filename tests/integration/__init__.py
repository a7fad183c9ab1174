"""Integration tests over real sockets on 127.0.0.1: a scriptable raw server, a fake proxy,
the fake API under load; each tries to break one promise of the client."""
