//! The strings of the account pages reached from an email or the sign-in page (decision
//! 0073): accepting an invitation, asking for and following a password-reset link, changing
//! one's password. Kept apart from [`crate::i18n::Text`] so those pages add no entries to
//! every other page's strings; the same rule holds: a string missing in either language does
//! not compile.

use crate::i18n::Lang;

pub(crate) struct AccountText {
    pub invitation_title: &'static str,
    pub invitation_intro: &'static str,
    pub company: &'static str,
    pub role: &'static str,
    pub your_name: &'static str,
    pub new_password: &'static str,
    pub repeat_password: &'static str,
    pub password_help: &'static str,
    pub accept: &'static str,
    pub invitation_invalid: &'static str,
    pub forgot_password: &'static str,
    pub reset_title: &'static str,
    pub reset_intro: &'static str,
    pub send_link: &'static str,
    pub reset_sent: &'static str,
    pub reset_confirm_title: &'static str,
    pub set_password: &'static str,
    pub reset_invalid: &'static str,
    pub ask_again: &'static str,
    pub change_title: &'static str,
    pub change_intro: &'static str,
    pub current_password: &'static str,
    pub change: &'static str,
    pub wrong_current: &'static str,
    pub password_short: &'static str,
    pub password_mismatch: &'static str,
    pub name_invalid: &'static str,
    pub email_invalid: &'static str,
    pub email_taken: &'static str,
    pub throttled: &'static str,
    pub back_to_account: &'static str,
}

impl AccountText {
    pub fn of(lang: Lang) -> &'static AccountText {
        match lang {
            Lang::En => &EN,
            Lang::Ru => &RU,
        }
    }
}

static EN: AccountText = AccountText {
    invitation_title: "Join your team on Wappline",
    invitation_intro: "You have been invited to this account. Choose your name and a password to accept.",
    company: "Company",
    role: "Role",
    your_name: "Your name",
    new_password: "New password",
    repeat_password: "Repeat the password",
    password_help: "At least 12 characters.",
    accept: "Accept and sign in",
    invitation_invalid: "This invitation link is invalid, has expired or was already used. Nothing was changed. Ask the person who invited you for a new one.",
    forgot_password: "Forgot your password?",
    reset_title: "Reset your password",
    reset_intro: "Enter your account ID and email. If they belong to a user, we send a link to set a new password.",
    send_link: "Send the link",
    reset_sent: "If the account ID and email belong to a user, a link to set a new password is on its way. It works once, for a limited time.",
    reset_confirm_title: "Choose a new password",
    set_password: "Set the password",
    reset_invalid: "This password reset link is invalid, has expired or was already used. Nothing was changed.",
    ask_again: "Ask for a new link",
    change_title: "Change your password",
    change_intro: "Every other session of yours will be signed out, and we will email you that the password changed.",
    current_password: "Current password",
    change: "Change the password",
    wrong_current: "The current password is wrong.",
    password_short: "The new password must be 12 to 72 bytes long (at least 12 characters).",
    password_mismatch: "The two passwords differ.",
    name_invalid: "Your name must be 1 to 100 characters.",
    email_invalid: "Enter a valid email address.",
    email_taken: "A user with this email already exists in this account. Nothing was changed.",
    throttled: "Too many attempts. Wait a few minutes and try again.",
    back_to_account: "Back to the account",
};

static RU: AccountText = AccountText {
    invitation_title: "Присоединитесь к команде в Wappline",
    invitation_intro: "Вас пригласили в этот аккаунт. Чтобы принять приглашение, укажите своё имя и пароль.",
    company: "Компания",
    role: "Роль",
    your_name: "Ваше имя",
    new_password: "Новый пароль",
    repeat_password: "Повторите пароль",
    password_help: "Не меньше 12 символов.",
    accept: "Принять и войти",
    invitation_invalid: "Ссылка приглашения недействительна, устарела или уже использована. Ничего не изменено. Попросите пригласившего прислать новую.",
    forgot_password: "Забыли пароль?",
    reset_title: "Сброс пароля",
    reset_intro: "Укажите ID аккаунта и эл. почту. Если это адрес пользователя, мы пришлём ссылку для нового пароля.",
    send_link: "Отправить ссылку",
    reset_sent: "Если ID аккаунта и адрес принадлежат пользователю, ссылка для нового пароля уже отправлена. Она действует один раз и недолго.",
    reset_confirm_title: "Выберите новый пароль",
    set_password: "Сохранить пароль",
    reset_invalid: "Ссылка для сброса пароля недействительна, устарела или уже использована. Ничего не изменено.",
    ask_again: "Запросить новую ссылку",
    change_title: "Смена пароля",
    change_intro: "Все другие ваши сеансы будут завершены, а мы сообщим о смене пароля по эл. почте.",
    current_password: "Текущий пароль",
    change: "Сменить пароль",
    wrong_current: "Текущий пароль неверен.",
    password_short: "Новый пароль должен быть длиной от 12 символов до 72 байт.",
    password_mismatch: "Пароли не совпадают.",
    name_invalid: "Имя должно содержать от 1 до 100 символов.",
    email_invalid: "Укажите правильный адрес эл. почты.",
    email_taken: "Пользователь с этим адресом уже есть в аккаунте. Ничего не изменено.",
    throttled: "Слишком много попыток. Подождите несколько минут и попробуйте снова.",
    back_to_account: "Вернуться в аккаунт",
};
