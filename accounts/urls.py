from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("practice/people/", views.people, name="people"),
    path("practice/people/<int:membership_id>/deactivate/", views.member_deactivate, name="member_deactivate"),
    path("practice/people/<int:membership_id>/reactivate/", views.member_reactivate, name="member_reactivate"),
    path("practice/people/<int:membership_id>/reset-second-factor/", views.member_otp_reset, name="member_otp_reset"),
    path("practice/people/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("practice/people/<int:membership_id>/clinician/", views.member_details, name="member_details"),
    path("practice/invitations/<int:invitation_id>/resend/", views.invitation_resend, name="invitation_resend"),
    path("practice/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("practice/settings/", views.practice_settings, name="practice_settings"),
    path("accounts/invitation/accept/", views.invitation_accept, name="invitation_accept"),
    path("accounts/invitation/<str:token>/", views.invitation_open, name="invitation_open"),
    path("accounts/enroll/", views.enroll, name="enroll"),
    path("accounts/security/", views.security, name="security"),
    path("accounts/security/backup-codes/", views.backup_codes_regenerate, name="backup_codes_regenerate"),
]
