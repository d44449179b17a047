-- The time zone the admin pages show a workspace's times in (an IANA name); SePay's own times are
-- Vietnam time, hence the default.
alter table workspaces add column time_zone text not null default 'Asia/Ho_Chi_Minh';
