//! The payment ledger's delivery: every row written to a partner effectively once (design §2),
//! through [`deliver::deliver`], generic over an [`deliver::Outbound`] each payment flow
//! implements (flow C's Credgenics payments, flow B's Crego records). Flows depend on the
//! ledger; the ledger depends on no flow (only on the context every flow is handed).

pub mod deliver;

pub use deliver::{DeliveryStats, Outbound, Prepared, Ready, deliver};
