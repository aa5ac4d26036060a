-- TPC-H Q6 in SQLite's dialect (validation parameters).
-- The spec's "between 0.06 - 0.01 and 0.06 + 0.01" written out: in floating
-- point 0.06 + 0.01 is 0.06999999999999999 and would drop l_discount = 0.07.
select
    sum(l_extendedprice * l_discount) as revenue
from
    lineitem
where
    l_shipdate >= '1994-01-01'
    and l_shipdate < date('1994-01-01', '+1 years')
    and l_discount between 0.05 and 0.07
    and l_quantity < 24;
