app_name = "classification"
urlpatterns: list = []
