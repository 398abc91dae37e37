from django.urls import path

from integrations.sandbox import views

app_name = "sandbox"
urlpatterns = [
    path("metadata", views.metadata, name="metadata"),
    path("<str:resource_type>", views.type_endpoint, name="type"),
    path("<str:resource_type>/<str:logical_id>", views.instance_endpoint, name="instance"),
    path("<str:resource_type>/<str:logical_id>/_history/<str:version>", views.instance_endpoint, name="history"),
]
