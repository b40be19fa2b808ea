"""LlamaIndex adapters over the :mod:`memcube` core."""
