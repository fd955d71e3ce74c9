"""`myaiserv eval`: relevance (nDCG@10, MAP, Recall@100) of bm25, vector and hybrid search
on a TREC-style collection, measured through the HTTP API of a running or a local
MyAIServ (``harness``). The test and benchmark tooling is not here: it lives in the
top-level ``tooling`` package, which the product never ships."""
