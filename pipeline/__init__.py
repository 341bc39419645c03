"""Pure building blocks of the headless batch tool (``scripts/batch.py``).

Not shipped in the extension. Everything here except :mod:`pipeline.library`
(the asset library writer) runs without bpy, so it is unit-tested in plain
Python; the batch script wires it to the add-on's scheduler and client.
"""
