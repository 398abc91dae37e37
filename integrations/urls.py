from django.urls import path

from integrations import views

app_name = "integrations"
urlpatterns = [
    path("deliveries/", views.delivery_dashboard, name="dashboard"),
    path("deliveries/<int:delivery_id>/reprocess/", views.delivery_reprocess, name="reprocess"),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
]
