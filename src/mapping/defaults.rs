//! The built-in expressions: what each outgoing field is when the config does not override it.
//! `config.toml.example` and README list the same expressions; a test keeps them in step.
//!
//! Input documents:
//! - loan / default: `{lead, program, line_detail, allocation_month, today, today_epoch, min_dpd}`
//!   where `program` is the borrower-program entry of `/programs/` (with its own `line_detail`,
//!   `loan_data`, `program`), `line_detail` the fresh line from the change stream, `today` the
//!   date in the configured time zone and `today_epoch` its midnight as epoch seconds (UTC).
//! - payment: `{record, loan: {loan_id, account, allocation_month}, allocation, line_detail:
//!   {due_amount, total_outstanding}, closed, reference, today}` where `allocation` is the loan's
//!   current allocation as sent (its `defaults[]` entry: `allocation_month`, `total_claim_amount`,
//!   `date_of_default`, …), and `reference` is the record's `utr` (or its
//!   `ref_id` when the utr is empty) and `closed` is true for the latest repayment of a line no
//!   longer due.
//! - record: `{payment: <webhook data or payment_history entry>, loan: {loan_id, account,
//!   allocation_month}, allocation, utr, recovery_epoch, today}` where `utr` is the payment reference (or
//!   `CG-<hash>` when empty) and `recovery_epoch` the recovery date as epoch seconds.

/// Upload Loan top-level keys (Credgenics "Request Body Parameters").
pub const DEFAULT_LOAN: &[(&str, &str)] = &[
    ("loan_id", ".program.ref_id"),
    ("client_customer_id", ".lead.ref_id // .lead.id"),
    ("loan_type", "\"Business Loan\""),
    ("product_type", ".program.program.product_name"),
    ("applicant_name", ".lead.name"),
    ("applicant_contact_number", ".lead.mobile | mobile10"),
    ("applicant_email", ".lead.email | if . == \"\" then null else . end"),
    (
        "total_loan_amount",
        ".line_detail.total_disbursed_amount // .program.line_detail.total_disbursed_amount",
    ),
    (
        "client_loan_sanction_date",
        ".program.line_detail.line_activation_date | if . == null then null else local_date end",
    ),
    (
        "loan_end_date",
        ".program.line_detail.line_expiry_date | if . == null then null else local_date end",
    ),
    ("interest_on_loan", ".program.loan_data.roi_value[0].value"),
    ("tenure_finished", ".program.line_detail.is_expired"),
    (
        "tags",
        "[\"crego\", .program.product_type] | map(select(. != null and . != \"\")) | join(\",\")",
    ),
];

/// Keys of the one `defaults[]` entry (the allocation month) of an upload.
pub const DEFAULT_DEFAULT: &[(&str, &str)] = &[
    ("allocation_month", ".allocation_month"),
    ("total_claim_amount", ".line_detail.due_amount"),
    (
        "date_of_default",
        ".today_epoch - ((.line_detail.dpd | floor) * 86400) | strftime(\"%Y-%m-%d\")",
    ),
    (
        "expected_emi",
        ".line_detail.total_due_principal + .line_detail.total_due_interest",
    ),
    ("late_fee", ".line_detail.total_due_penal"),
    ("principal_outstanding_amount", ".line_detail.principal_outstanding"),
    ("allocation_dpd_value", ".line_detail.dpd"),
    ("allocation_dpd_bracket", ".line_detail.dpd | dpd_bracket"),
];

/// Update Payment keys (flow C).
pub const DEFAULT_PAYMENT: &[(&str, &str)] = &[
    ("amount_recovered", ".record.amount"),
    (
        "final_status",
        "if .closed then \"Closed\" else \"Partially Recovered\" end",
    ),
    ("closure_with", "if .closed then \"NOC\" else null end"),
    // The documented example carries it; the older document requires it with Partially Recovered.
    ("date_of_default", ".allocation.date_of_default"),
    ("payment_method", "\"Bank Account Transfer\""),
    ("payment_mode", ".record.payment_mode"),
    ("payment_reference_number", ".reference"),
    ("recovery_date", ".record.date | local_date"),
    (
        "payment_received_date",
        "(.record.bank_date // .record.date) | local_date",
    ),
    ("recovered_by", "\"crego-credgenics-sync\""),
];

/// Crego record keys (flow B).
pub const DEFAULT_RECORD: &[(&str, &str)] = &[
    ("type", "\"repayment\""),
    ("account", ".loan.account"),
    ("amount", ".payment.amount_recovered"),
    ("date", ".recovery_epoch"),
    ("utr", ".utr"),
    (
        "payment_mode",
        ".payment.payment_mode | if . == \"\" then null else . end",
    ),
    (
        "remark",
        "\"Credgenics payment \" + .utr + \" on loan \" + .loan.loan_id",
    ),
];

/// Credit-line mode (design §8): a drawdown of a line (a Crego loan or topup) read as a
/// Credgenics transaction. Input: `{lead, program, drawdown, kind}` where `drawdown` is an item of
/// the line's loans or topups list (`crego.line_loans_path`, `crego.line_topups_path`) and `kind`
/// is `"loan"` or `"topup"`. The documents give no shape for those lists: these are the assumed
/// keys, and each is a link to override. The upload itself is `[mapping.loan]` and
/// `[mapping.default]` over the line with the drawdown's numbers in `line_detail`.
pub const DEFAULT_TRANSACTION: &[(&str, &str)] = &[
    ("client_customer_id", ".program.ref_id"),
    ("transaction_id", ".drawdown.ref_id // .drawdown.id"),
    // What LMS records name in `loans[]` / `topup`.
    ("drawdown_id", ".drawdown.id"),
    ("amount", ".drawdown.amount"),
    ("due_amount", ".drawdown.due_amount"),
    ("total_outstanding", ".drawdown.total_outstanding"),
    ("dpd", ".drawdown.dpd"),
    ("opened_at", ".drawdown.date // .drawdown.created_at"),
    ("updated_at", ".drawdown.updated_at"),
];
