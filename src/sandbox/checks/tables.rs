//! The documented tables the fake Credgenics checks against, transcribed from the "Request Body
//! Parameters" of `credgenics-api.txt`: each key's type and option lists.

/// What one documented key holds.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// `string`.
    Str,
    /// `date`, `YYYY-MM-DD`.
    Date,
    /// `datetime`: the payment examples send `YYYY-MM-DD` and `YYYY-MM-DD HH:MM:SS`.
    DateTime,
    /// An allocation month, `YYYY-M-01` (the path parameter example "2021-2-01").
    Month,
    /// `mobile number`: 10 digits, several separated by commas.
    Mobile,
    /// `email address`: several separated by commas.
    Email,
    /// `language`: ISO 639-1 code or name of the listed languages.
    Language,
    /// A string from the given options.
    OneOf(&'static [&'static str]),
    /// `amount` / `decimal` / `percentage` (`float`): any JSON number.
    Float,
    /// The payment's `amount_recovered`: a JSON number above zero.
    Positive,
    /// `number` / `postal code` (`integer`).
    Int,
    /// An account number: the table says integer, but its examples send strings of digits (with
    /// leading zeros: "0000012835") and `""`.
    Digits,
    /// `bool` (`boolean`).
    Bool,
    /// `list` of objects, whose keys the given table describes.
    List(&'static [(&'static str, Ty)]),
}

pub const GENDER_APPLICANT: &[&str] = &["Male", "Female", "Non-Binary"];
pub const GENDER_CO_APPLICANT: &[&str] = &["Male", "Female", "Other"];
/// `reference_gender` is of type gender without a list of its own: any documented gender.
pub const GENDER_ANY: &[&str] = &["Male", "Female", "Non-Binary", "Other"];
pub const SECURITY: &[&str] = &["Secured", "Secured Movable", "Secured Immovable", "Unsecured"];
pub const ADDRESS_TYPE: &[&str] = &["Home", "Business", "Office"];
pub const PAYMENT_METHOD: &[&str] = &[
    "Online",
    "Cash",
    "Cheque",
    "Bank Account Transfer",
    "Application",
    "Payment Link",
];
pub const CLOSURE_WITH: &[&str] = &["NOC", "Settlement"];
/// The table's options (Field Collection, Communication, Legal) and the spelling its own examples
/// use ("Communications").
pub const RECOVERY_METHOD: &[&str] = &["Field Collection", "Communication", "Communications", "Legal"];
/// The listed languages: ISO 639-1 codes (the example sends "hi") and names.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("hi", "Hindi"),
    ("ta", "Tamil"),
    ("pa", "Punjabi"),
    ("te", "Telugu"),
    ("mr", "Marathi"),
    ("gu", "Gujarati"),
    ("kn", "Kannada"),
    ("bn", "Bengali"),
    ("ml", "Malayalam"),
    ("or", "Oriya"),
    ("as", "Assamese"),
];

/// Upload Loan, "Loan Keys" (top level).
pub const LOAN: &[(&str, Ty)] = &[
    ("loan_id", Ty::Str),
    ("client_customer_id", Ty::Str),
    ("loan_type", Ty::Str),
    ("applicant_name", Ty::Str),
    ("applicant_email", Ty::Email),
    ("applicant_contact_number", Ty::Mobile),
    ("applicant_gender", Ty::OneOf(GENDER_APPLICANT)),
    ("applicant_dob", Ty::Date),
    ("applicant_monthly_income", Ty::Float),
    ("applicant_cibil_score", Ty::Int),
    ("applicant_aadhar_number", Ty::Str),
    ("applicant_pan_number", Ty::Str),
    ("applicant_photo_link", Ty::Str),
    ("applicant_notice_reference_number", Ty::Str),
    ("applicant_occupation", Ty::Str),
    ("applicant_language", Ty::Language),
    ("total_loan_amount", Ty::Float),
    ("vehicle_registration_number", Ty::Str),
    ("loan_tenure", Ty::Int),
    ("client_loan_sanction_date", Ty::Date),
    ("loan_end_date", Ty::Date),
    ("interest_on_loan", Ty::Float),
    ("tenure_finished", Ty::Bool),
    ("security_type", Ty::OneOf(SECURITY)),
    ("backed_by_security", Ty::Bool),
    ("chassis_number", Ty::Str),
    ("loan_nbfc_name", Ty::Str),
    ("loan_nbfc_cin", Ty::Str),
    ("tags", Ty::Str),
    ("agent_email", Ty::Email),
    ("emi_amount", Ty::Float),
    ("engine_number", Ty::Str),
    ("group_id", Ty::Str),
    ("product_type", Ty::Str),
    ("credit_account_number", Ty::Digits),
    ("credit_account_holder_name", Ty::Str),
    ("credit_account_holder_type", Ty::Str),
    ("credit_bank_name", Ty::Str),
    ("credit_bank_ifsc_code", Ty::Str),
    ("business_name", Ty::Str),
    ("make_and_model", Ty::Str),
    ("merchant_name", Ty::Str),
    ("notice_date", Ty::Date),
    ("notice_delivery_partner", Ty::Str),
    ("payment_link", Ty::Str),
    ("payment_link_expiry", Ty::Int),
    ("channel_partner", Ty::Str),
    ("loan_region", Ty::Str),
    ("loan_regional_manager_name", Ty::Str),
    ("loan_regional_manager_contact_number", Ty::Mobile),
    ("loan_regional_manager_contact_email", Ty::Email),
    ("loan_source_branch_address", Ty::Str),
    ("document_details", Ty::List(DOCUMENT)),
    ("applicant_address", Ty::List(APPLICANT_ADDRESS)),
    ("defaults", Ty::List(DEFAULT)),
    ("references", Ty::List(REFERENCE)),
    ("co_applicant", Ty::List(CO_APPLICANT)),
];

/// "Document Keys", the entries of `document_details`.
pub const DOCUMENT: &[(&str, Ty)] = &[
    ("security_mode", Ty::Str),
    ("document_number", Ty::Str),
    ("document_bank_name", Ty::Str),
    ("document_bank_ifsc_code", Ty::Str),
    ("document_amount", Ty::Float),
    ("document_date", Ty::Date),
    ("document_dishonour_date", Ty::Date),
    ("document_signature_name", Ty::Str),
    ("document_bounce_bank_account_number", Ty::Digits),
    ("document_bounce_charges", Ty::Float),
    ("document_bounce_bank_name", Ty::Str),
    ("document_bounce_bank_ifsc_code", Ty::Str),
    ("document_bounce_bank_address", Ty::Str),
    ("document_bounce_memo_date", Ty::Date),
    ("reason_of_document_bounce", Ty::Str),
    ("document_micr", Ty::Str),
    ("document_presented_in_account", Ty::Str),
    ("document_presented_zone", Ty::Str),
    ("document_bounce_memo_branch_address", Ty::Str),
    ("document_signature_address_text", Ty::Str),
    ("document_signature_city", Ty::Str),
    ("document_signature_state", Ty::Str),
    ("document_signature_pincode", Ty::Int),
    ("document_bounce_memo_reference_number", Ty::Str),
    ("document_sequence_number", Ty::Str),
    ("document_bounce_memo_return_date", Ty::Date),
    ("document_umrn", Ty::Str),
];

/// "Address Keys", the entries of `applicant_address`.
pub const APPLICANT_ADDRESS: &[(&str, Ty)] = &[
    ("applicant_address_type", Ty::OneOf(ADDRESS_TYPE)),
    ("applicant_address_text", Ty::Str),
    ("applicant_state", Ty::Str),
    ("applicant_city", Ty::Str),
    ("applicant_landmark", Ty::Str),
    ("applicant_pincode", Ty::Int),
    ("applicant_address_latitude", Ty::Str),
    ("applicant_address_longitude", Ty::Str),
];

/// "Default Keys", the entries of `defaults` (one per allocation month).
pub const DEFAULT: &[(&str, Ty)] = &[
    ("allocation_month", Ty::Month),
    ("allocation_dpd_value", Ty::Int),
    ("allocation_dpd_bracket", Ty::Str),
    ("total_claim_amount", Ty::Float),
    ("late_fee", Ty::Float),
    ("date_of_default", Ty::Date),
    ("expected_emi", Ty::Float),
    ("default_emi_number", Ty::Int),
    ("settlement_amount", Ty::Float),
    ("client_amount_recovered", Ty::Float),
    ("principal_outstanding_amount", Ty::Float),
    ("expected_emi_interest_amount", Ty::Float),
    ("expected_emi_principal_amount", Ty::Float),
    ("other_penalty", Ty::Float),
];

/// "Reference Keys", the entries of `references`.
pub const REFERENCE: &[(&str, Ty)] = &[
    ("relation_with_applicant", Ty::Str),
    ("name", Ty::Str),
    ("contact_number", Ty::Mobile),
    ("reference_gender", Ty::OneOf(GENDER_ANY)),
    ("reference_pan_number", Ty::Str),
    ("reference_address", Ty::List(REFERENCE_ADDRESS)),
];

pub const REFERENCE_ADDRESS: &[(&str, Ty)] = &[
    ("reference_address_type", Ty::Str),
    ("reference_address_text", Ty::Str),
    ("reference_city", Ty::Str),
    ("reference_state", Ty::Str),
    ("reference_pincode", Ty::Int),
];

/// "Coapplicant Keys", the entries of `co_applicant`.
pub const CO_APPLICANT: &[(&str, Ty)] = &[
    ("co_applicant_name", Ty::Str),
    ("co_applicant_type", Ty::Str),
    ("co_applicant_language", Ty::Language),
    ("co_applicant_email", Ty::Email),
    ("co_applicant_contact_number", Ty::Mobile),
    ("co_applicant_gender", Ty::OneOf(GENDER_CO_APPLICANT)),
    ("co_applicant_dob", Ty::Date),
    ("co_applicant_notice_reference_number", Ty::Str),
    ("co_applicant_photo_link", Ty::Str),
    ("co_applicant_address", Ty::List(CO_APPLICANT_ADDRESS)),
];

pub const CO_APPLICANT_ADDRESS: &[(&str, Ty)] = &[
    ("co_applicant_address_text", Ty::Str),
    ("co_applicant_address_type", Ty::OneOf(ADDRESS_TYPE)),
    ("co_applicant_state", Ty::Str),
    ("co_applicant_city", Ty::Str),
    ("co_applicant_pincode", Ty::Int),
    ("co_applicant_address_latitude", Ty::Str),
    ("co_applicant_address_longitude", Ty::Str),
];

/// Update Payment, "Request Body Parameters": key, type, required.
pub const PAYMENT: &[(&str, Ty, bool)] = &[
    ("final_status", Ty::Str, true),
    ("amount_recovered", Ty::Positive, true),
    ("recovery_method", Ty::OneOf(RECOVERY_METHOD), false),
    ("payment_method", Ty::OneOf(PAYMENT_METHOD), true),
    ("payment_received_date", Ty::Date, false),
    ("closure_with", Ty::OneOf(CLOSURE_WITH), false),
    ("payment_reference_number", Ty::Str, false),
    ("payment_mode", Ty::Str, false),
    ("recovered_by", Ty::Str, false),
    ("recovery_date", Ty::DateTime, false),
    // The credit-line variant of the same table.
    ("client_customer_id", Ty::Str, false),
    // In the "Recovery Amount Bifurcation" example.
    ("date_of_default", Ty::Date, false),
];
