"""The Model Context Protocol at ``/mcp``: MyAIServ's search, runs, documents, RAG answers
and prompts for agents (Claude, Cursor, IDEs), authenticated and limited as ``/v1``."""
