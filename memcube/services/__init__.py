"""Services: the operations of a cube, one module per job, over the storage and policy layers.

The facade (:class:`memcube.MemCube`) checks a public call's arguments and delegates it here:

* :mod:`~memcube.services.usage`: access counts (the scheduler's usage signal);
* :mod:`~memcube.services.reads`: scoped reads (get, search, listings, counts);
* :mod:`~memcube.services.writes`: the write pipeline (validation, ownership, batching,
  embedding, the lifecycle's plan, redaction, audit) and writes in place;
* :mod:`~memcube.services.versions`: new versions, history and rollback;
* :mod:`~memcube.services.states`: freeze, feedback and the time-based sweep;
* :mod:`~memcube.services.sharing`: shares and their revocation;
* :mod:`~memcube.services.ingest`: conversations read into memories;
* :mod:`~memcube.services.opening`: the cube folder, its lock and its manifest.
"""
