-- One booking per bank transaction whichever path brought it: a webhook without SePay's `id` is
-- keyed by its fields (`sepay-noid:…`), the same transaction fetched by reconciliation by its id
-- (`sepay:<id>`). Both carry the transaction's identity (the fields' hash, when the bank gave a
-- reference number), and a workspace books an identity once.
alter table wallet_transactions add column identity_key text;
create unique index wallet_transactions_identity on wallet_transactions (ws_id, identity_key)
    where identity_key is not null;
