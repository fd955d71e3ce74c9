"""Daily LLM token and cost quotas per tenant."""
