-- Resources' connector_selector and connectors' labels (decision 063): a connector's snapshot
-- holds only the resources whose selector its labels satisfy. JSON objects of strings.
ALTER TABLE resources ADD COLUMN connector_selector TEXT NOT NULL DEFAULT '{}';
ALTER TABLE connectors ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
