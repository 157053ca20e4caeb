"""Maps the user's top-level folders into the single `mmpost` namespace.

`modalities/` -> `mmpost.modalities`, `tasks/` -> `mmpost.tasks`, `eval/` -> `mmpost.eval`, so `eval/`
never shadows Python's builtin and `tasks` never squats a generic top-level name.
"""
from setuptools import find_packages, setup

FOLDER_TO_PACKAGE = {"mmpost": "mmpost", "modalities": "mmpost.modalities", "tasks": "mmpost.tasks", "eval": "mmpost.eval"}

package_dir = {}
packages = []
for folder, package in FOLDER_TO_PACKAGE.items():
    package_dir[package] = folder
    packages.append(package)
    for sub in find_packages(folder):
        packages.append(f"{package}.{sub}")
        package_dir[f"{package}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir, package_data={"": ["*.yaml", "*.json", "*.jinja"]})
