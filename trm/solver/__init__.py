"""Solving puzzles handed in by a user (a Sudoku string, a maze grid, an ARC task) with a published model."""
