-- Transparency suite: run through Gate (allow-all policy) and directly; the outputs must be identical.
select 1;
select null;
select 1::int2, 2::int4, 3::int8, 4.5::float4, 6.25::float8;
select 12345678901234567890.123456789::numeric, 'NaN'::numeric, -0.000001::numeric(10,6);
select true, false, null::bool;
select 'text', 'ünïcödé ✓ 日本語', E'tab\there', '';
select 'a'::char(5), 'b'::varchar(3), 'longer'::varchar;
select array[1, 2, 3], array['a', null, 'c'], '{{1,2},{3,4}}'::int[];
select '{"a": 1, "b": [true, null]}'::json, '{"z": 1, "a": {"b": 2}}'::jsonb;
select jsonb_build_object('k', 'v') -> 'k', '{"x": [1,2]}'::jsonb #> '{x,1}';
select '2024-02-29 13:45:56.123456'::timestamp, '2024-02-29 13:45:56+02'::timestamptz;
select '2024-02-29'::date, '13:45:56'::time, '1 year 2 mons 3 days 04:05:06'::interval;
select '\xdeadbeef'::bytea, decode('68656c6c6f', 'hex'), ''::bytea;
select gen_random_uuid() is not null, '123e4567-e89b-12d3-a456-426614174000'::uuid;
select '192.168.1.1/24'::inet, '10.0.0.0/8'::cidr, '08:00:2b:01:02:03'::macaddr;
select point(1, 2), box(point(0, 0), point(1, 1)), '[1,5)'::int4range;
select 'fat & rat'::tsquery, to_tsvector('english', 'The quick brown foxes');
select x, x * x from generate_series(1, 5) x;
select count(*), sum(x), avg(x), min(x), max(x) from generate_series(1, 1000) x;
select string_agg(x::text, ',' order by x desc) from generate_series(1, 10) x;
select x, case when x % 2 = 0 then 'even' else 'odd' end from generate_series(1, 4) x;
select * from (values (1, 'one'), (2, 'two'), (3, null)) v(n, name) order by n;
select n, row_number() over (order by n desc), lag(n) over (order by n) from generate_series(1, 4) n;
with recursive t(n) as (select 1 union all select n + 1 from t where n < 6) select sum(n) from t;
create table tx (id serial primary key, name text not null, amount numeric(12,2), tags text[], doc jsonb, created timestamptz default '2020-01-01');
insert into tx (name, amount, tags, doc) values ('a', 1.50, '{x,y}', '{"k": 1}'), ('b', null, null, null) returning id, name;
update tx set amount = amount + 1 where name = 'a' returning amount;
select * from tx order by id;
insert into tx (name) values (null);
insert into tx (id, name) values (1, 'duplicate');
select * from no_such_table;
select 1/0;
select 'abc'::int;
selec 1;
do $$ begin raise notice 'hello from a notice %', 42; end $$;
do $$ begin raise warning 'careful'; end $$;
begin;
insert into tx (name) values ('in transaction');
savepoint s1;
insert into tx (name) values ('rolled back');
rollback to savepoint s1;
commit;
select name from tx order by id;
begin;
select 1/0;
select 1;
rollback;
begin isolation level serializable read only;
select count(*) from tx;
commit;
copy (select id, name, amount from tx order by id) to stdout;
copy (select id, name from tx order by id) to stdout with (format csv, header true);
create table cp (a int, b text);
copy cp from stdin;
1	one
2	two with	tab
\N	null row
\.
copy cp from stdin with (format csv);
3,"quoted, comma"
\.
select * from cp order by a nulls last;
copy cp from stdin;
not-a-number	x
\.
drop table cp;
prepare p1(int) as select $1 * 2, $1::text;
execute p1(21);
deallocate p1;
declare c cursor with hold for select x from generate_series(1, 5) x;
fetch 2 from c;
fetch all from c;
close c;
create temp table tmp_t as select x from generate_series(1, 3) x;
select * from tmp_t;
explain (costs off) select * from tx where id = 1;
show timezone;
set search_path = public;
select current_setting('search_path');
listen gate_channel;
notify gate_channel, 'payload';
unlisten gate_channel;
select pg_typeof(1.5), pg_typeof('x'::text), pg_typeof(now());
select length(repeat('x', 100000));
select md5(string_agg(x::text, ',')) from generate_series(1, 100000) x;
select x, md5(x::text) from generate_series(1, 100000) x;
drop table tx;
