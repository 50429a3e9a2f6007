-- A device's address is the one it reports for itself (`IPAddress` in an options dump, the
-- registry body, or the IP field of `INFO=`): that is the address on its own network, where an
-- operator reaches it. The address its requests come from (a NAT gateway's, a proxy's) stands in
-- only until it reports one. Without this flag the periodic activity flush wrote the request's
-- address over the reported one, and which of the two a reader saw depended on timing.
--
-- Expand only (see README.md): a new column with a default; a previous release ignores it.
ALTER TABLE devices ADD COLUMN ip_address_reported INTEGER NOT NULL DEFAULT 0;
