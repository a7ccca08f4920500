"""mbutils.models"""
