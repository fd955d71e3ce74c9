"""The indexing pipeline: drains the outbox into Elasticsearch (chunk, embed, bulk-write).

Imports the core (``myaiserv``); the core never imports this package.
"""
