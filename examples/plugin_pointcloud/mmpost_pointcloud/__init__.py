"""An example mmpost plugin: the "pointcloud" modality, the "pointcloud_axis" task and its reward.

Nothing here is imported by mmpost itself; the entry points in pyproject.toml make the names resolvable
(`data.task: pointcloud_axis`) in every process once the package is installed.
"""
__version__ = "0.1.0"
