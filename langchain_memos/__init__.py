"""LangChain / LangGraph adapters over the :mod:`memcube` core."""
