"""The batch command's pure parts: inputs, state, quota, progress, webhook receiver,
the batch loop (``runner``) and the command itself (``cli``).

No bpy here (like ``client/`` and ``jobs/``), so everything is unit-tested in plain
Python; the one bpy part, the asset library writer, is ``..blender.library``.
Users run it as ``blender -b -c hiptah batch ...`` (``..blender.commands``).
"""
