-- The relay's work list: one row per event opened for processing (`received`), written in the
-- statement that opens it (a first delivery, a reconciliation insert, a reopen).
--
-- Why not an index on the events table: an index over `status` or `published_at` made every
-- publication mark and every booking a non-HOT update, a new version of the wide event row plus an
-- entry in each of its indexes. With none of the columns they change indexed, and room left on
-- each page (fillfactor), both are HOT updates.
--
-- Rows are not deleted by the booking: the relay prunes those whose event has left `received`
-- (or is gone), in one statement per pass, off the hot path. `attempts` ties a row to the attempt
-- that opened it, so a prune never removes the row of a reopen it raced.
create table sepay_open_events (
    event_id   bigint primary key,
    attempts   integer not null,
    opened_at  timestamptz not null
);
create index sepay_open_events_opened on sepay_open_events (opened_at);

insert into sepay_open_events (event_id, attempts, opened_at)
select id, attempts, opened_at from sepay_webhook_events where status = 'received';

drop index sepay_webhook_events_relay;

-- room on each page for the row's later versions (publication mark, booking): HOT updates
alter table sepay_webhook_events set (fillfactor = 70);
