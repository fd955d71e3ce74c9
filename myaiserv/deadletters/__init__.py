"""Dead letters: index writes that failed for good, listed per tenant and requeued."""
