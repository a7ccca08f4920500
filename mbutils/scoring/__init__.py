"""mbutils.scoring"""
