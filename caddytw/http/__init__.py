"""HTTP serving: requests, placeholders, matchers, routing and the server glue."""
