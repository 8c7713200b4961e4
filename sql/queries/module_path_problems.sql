-- Why each of several module paths breaks Go's rules (NULL when fine), in the order given.
SELECT cbs.module_path_problem(p) FROM unnest($1::text[]) WITH ORDINALITY AS u(p, i) ORDER BY i
