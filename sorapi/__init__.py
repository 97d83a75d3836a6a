"""SorAPI: shapes, settings and domain rules shared by the API, workflows, activities and workers."""
