"""config.urls plus placeholders for base-template names other apps have not shipped yet."""

from django.http import HttpResponse
from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns


def _placeholder(request):  # pragma: no cover - never visited
    return HttpResponse("placeholder")


urlpatterns = list(project_urlpatterns)
_installed: set[str] = set()


def install(names: list[str]) -> None:
    namespaced: dict[str, list] = {}
    for name in names:
        if name in _installed:
            continue
        _installed.add(name)
        if ":" in name:
            namespace, short = name.split(":", 1)
            namespaced.setdefault(namespace, []).append(
                path(f"__placeholder__/{namespace}/{short}/", _placeholder, name=short)
            )
        else:
            urlpatterns.append(path(f"__placeholder__/{name}/", _placeholder, name=name))
    for namespace, patterns in namespaced.items():
        # First, so it wins over the app's own (still empty) namespace of the same name.
        urlpatterns.insert(0, path(f"__placeholder__/{namespace}/", include((patterns, namespace))))
