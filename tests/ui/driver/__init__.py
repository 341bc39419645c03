"""The real-GUI test driver: Blender with its UI under Xvfb (see session.py)."""
