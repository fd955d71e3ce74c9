"""Backups: an Elasticsearch snapshot and a PostgreSQL dump in one self-describing folder
(`myaiserv backup`), and the way back (`myaiserv restore`)."""
