"""The HTTP surface of the Ingress: API keys (`auth`), request parsing (`inputs`), the one error
table (`errors`), response bodies (`schemas`), Prometheus metrics (`metrics`) and the sentences
of errors that cross process boundaries (`remote_errors`). No deployment lives here."""
